"""scalinglab.train"""
