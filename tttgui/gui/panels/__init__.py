"""The side panels of the main window: model, data, shift, method."""
