"""The imagefx module: the postprocessor's filters and upscaler over HTTP, for still images."""
