"""The headless CLI: `easydistill [--workspace DIR] COMMAND ...` and the EasyDistill-compatible `--config FILE`."""
