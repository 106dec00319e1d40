# The targets CI runs are scripts/test and scripts/check; these are shortcuts.
.PHONY: serve test check bench
serve:
	scripts/serve
test:
	scripts/test
check:
	scripts/check
bench:
	scripts/bootstrap && .venv/bin/python -m bench
