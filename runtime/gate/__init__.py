"""The gate stage, one module per job: stage (the stage entry: read the scores and metrics, write the verdict
and the reports), verdict (the checks, pure), plot (the loss-curve PNG), report (report.md, and report.html
through templates/report/gate.html.j2). Importing it loads no torch and no matplotlib."""
