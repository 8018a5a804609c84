-- Tasks with an even id fail; the others succeed.
local rt = require "hakrt"
if rt.self() % 2 == 0 then error("even task " .. rt.self()) end
print("odd task ok")
