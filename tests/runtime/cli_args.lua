-- hklua --threads: arg and ... as lua5.4 gives them, whole output lines.
local rt = require "hakrt"
print("task", rt.self(), "of", rt.workers(), "workers", arg[0]:match("[^/]*$"), arg[1], select("#", ...), ...)
