"""The pure core: rules about chargers, vehicles, money and energy. No I/O in here."""
