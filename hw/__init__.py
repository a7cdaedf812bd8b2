"""binaccel.hw"""
