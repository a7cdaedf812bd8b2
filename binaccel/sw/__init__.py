"""binaccel.sw"""
