"""The torch network (encoder + heads), shared by training and the torch scorer."""
