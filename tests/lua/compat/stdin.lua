-- Reads its input: lines, numbers, the rest.
local first = io.read("l")
local n = io.read("n")
local rest = io.read("a")
print("first", first)
print("number", n, math.type(n))
print("rest", #rest, (rest:gsub("\n", "|")))
