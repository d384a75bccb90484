"""What the simulator (``data_sim``) and the network (``segnet``) share: where the project's files are."""
