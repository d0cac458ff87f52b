"""This app's stacks (entry point: app.py): settings from cdk.json, composed from the model_delivery library."""
