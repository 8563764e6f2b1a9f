"""The baseline_eval and eval stages, one module per job: stage (the stage entries baseline and tuned: load what
is evaluated, score the task, write scores.json), prompts (the validation records as prompts, few-shot or
retrieved context included), scoring (generation and continuation log-probs in batches), benchmark (the general
benchmark of the forgetting check). Importing it loads no torch."""
