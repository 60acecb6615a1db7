"""Two ways a plugin can break; Greenroom must survive both."""
