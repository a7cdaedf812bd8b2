def main(argv=None):
    from binaccel.sw.cli import main as _main
    return _main(argv)
