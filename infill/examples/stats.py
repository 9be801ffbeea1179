"""Small statistics helpers: the example file of `infill demo`."""


def mean(values):
    total = sum(values)

    return total / len(values)


def variance(values):
    m = mean(values)
    squares = [(v - m) ** 2 for v in ]
    return sum(squares) / len(squares)


def stdev(values):
    return variance(values) ** 0.5


def median(values):
    
