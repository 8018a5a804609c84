-- String building, formatting, patterns.
local parts = {}
for i = 1, 200 do parts[#parts + 1] = string.format("%03d:%x:%5.2f", i, i * 17, i / 7) end
local s = table.concat(parts, ";")
print(#s, s:sub(1, 40))
print((s:gsub("%d+", function(d) return #d end)):sub(1, 60))
print(s:find("100:"), s:match("(%d+):(%x+):%s*(%d+%.%d+)", 500))
local acc = ""
for i = 1, 300 do acc = acc .. string.char(65 + i % 26) end
print(#acc, acc:sub(-10), acc:upper():lower():reverse():sub(1, 8))
print(string.rep("ab", 5, "-"), ("x"):rep(0), utf8.char(72, 228, 8364))
print(string.pack("<i4", 100):byte(1, -1))
for w in ("one two  three"):gmatch("%S+") do io.write("[", w, "]") end
print()
