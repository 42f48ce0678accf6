"""scalinglab.parallel"""
