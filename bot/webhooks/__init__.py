"""One webhook per platform, each in the platform's own protocol; all end in `Delivery`."""
