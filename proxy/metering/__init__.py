"""Money and usage: prices, admission and settlement, alert delivery."""
