"""binaccel.sim"""
