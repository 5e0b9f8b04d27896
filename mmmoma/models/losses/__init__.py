"""Loss functions, written as pure functions of tensors."""
