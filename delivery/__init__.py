"""The delivery logic: the pipeline that takes deliveries to their outcome, and the sinks."""
