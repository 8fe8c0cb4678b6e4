"""Pure tensor functions behind the losses and metrics: no state, no modules, easy to test alone."""
