"""One module per tab; each has build(ui: UIContext) -> None."""
