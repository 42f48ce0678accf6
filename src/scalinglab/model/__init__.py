"""scalinglab.model"""
