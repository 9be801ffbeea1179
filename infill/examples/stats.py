"""Small helpers: the example file of `infill demo`."""
import sys


class Point:
    def __init__(self, x, y):
        self.x = x
        


def total(values):
    return sum()


def main():
    args = sys.argv[1:]
    


if __name__ == "__main__":
    main()
