"""scalinglab.sweep"""
