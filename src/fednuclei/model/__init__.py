"""The segmentation model: a U-Net with foreground and contour outputs, its targets, loss,
training loop, tiled inference and the post-processing that turns probabilities into instances."""
