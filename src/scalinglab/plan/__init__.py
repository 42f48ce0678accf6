"""scalinglab.plan"""
