"""What ships: the wheel, the sdist and the container image."""
