"""CDK stacks and constructs of the model delivery app (entry point: app.py)."""
