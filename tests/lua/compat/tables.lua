-- Binary trees and growing/shrinking tables, with checksums.
local function make(d)
  if d == 0 then return {} end
  d = d - 1
  return {make(d), make(d)}
end
local function check(t)
  if not t[1] then return 1 end
  return 1 + check(t[1]) + check(t[2])
end
local long = make(12)
local total = 0
for d = 4, 12, 2 do
  for _ = 1, 2 ^ (12 - d) do total = total + check(make(d)) end
end
print("trees", total, check(long))
local t = {}
for i = 1, 50000 do t[i] = i * 2 end
for i = 50000, 1, -1 do if i % 3 ~= 0 then table.remove(t, i) end end
print("array", #t, t[1], t[#t])
local h = {}
for i = 1, 30000 do h["k" .. i] = i end
for i = 1, 30000, 2 do h["k" .. i] = nil end
local n, s = 0, 0
for k, v in pairs(h) do n = n + 1; s = s + v end
print("hash", n, s)
table.sort(t, function(a, b) return a > b end)
print("sorted", t[1], t[#t])
