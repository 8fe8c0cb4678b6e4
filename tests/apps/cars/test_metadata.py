import pytest

from simtune.apps.cars.metadata import CarMetadata, parse_class_name


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Audi TTS Coupe 2012", CarMetadata("Audi", "TTS Coupe", 2012)),
        ("AM General Hummer SUV 2000", CarMetadata("AM General", "Hummer SUV", 2000)),
        ("Aston Martin V8 Vantage Convertible 2012", CarMetadata("Aston Martin", "V8 Vantage Convertible", 2012)),
        ("Land Rover LR2 SUV 2012", CarMetadata("Land Rover", "LR2 SUV", 2012)),
        ("Mercedes-Benz 300-Class Convertible 1993", CarMetadata("Mercedes-Benz", "300-Class Convertible", 1993)),
        ("Ram C/V Cargo Van Minivan 2012", CarMetadata("Ram", "C/V Cargo Van Minivan", 2012)),
        ("Toyota 4Runner SUV", CarMetadata("Toyota", "4Runner SUV", None)),
        ("Beetle", CarMetadata("Beetle", "", None)),
    ],
)
def test_parse_class_name(name, expected):
    assert parse_class_name(name) == expected


def test_empty_class_name_fails_clearly():
    with pytest.raises(ValueError, match="class name is empty"):
        parse_class_name("  ")
