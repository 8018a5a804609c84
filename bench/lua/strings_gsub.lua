-- strings_gsub.lua -- pattern matching that makes strings: gsub with string,
-- table and function replacements, gmatch splitting, upper/lower, escaping
-- and unescaping.
--
-- Usage: lua strings_gsub.lua [paragraphs]   (default 14000)
-- Self-check: the words counted by gmatch equal gsub's replacement count;
-- escaping then unescaping gives back the text; a table replacement and a
-- function replacement give the same result.

local N = tonumber(arg and arg[1]) or 14000

local function fail(fmt, ...)
  error("strings_gsub: " .. string.format(fmt, ...))
end

math.randomseed(42)
local vocabulary = {}
for i = 1, 300 do
  local len = 2 + i % 9
  local w = {}
  for j = 1, len do w[j] = string.char(97 + (i * 7 + j * 13) % 26) end
  vocabulary[i] = table.concat(w)
end
local upper_of = {}
for _, w in ipairs(vocabulary) do upper_of[w] = w:upper() end

local function paragraph(words)
  local t = {}
  for i = 1, words do
    t[i] = vocabulary[math.random(#vocabulary)]
    if i % 11 == 0 then t[i] = t[i] .. "," end
    if i % 17 == 0 then t[i] = t[i] .. "." end
  end
  t[#t + 1] = "<" .. words .. " & \"" .. words * 3 .. "\">"
  return table.concat(t, " ")
end

local function escape(s)
  return (s:gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;",
                              [">"] = "&gt;", ['"'] = "&quot;" }))
end
local function unescape(s)
  return (s:gsub("&(%a+);", { amp = "&", lt = "<", gt = ">", quot = '"' }))
end

local words_total, hash = 0, 0
for p = 1, N do
  local text = paragraph(40 + p % 60)

  -- Counting words two ways.
  local count = 0
  for _ in text:gmatch("%a+") do count = count + 1 end
  local _, replaced = text:gsub("%a+", "%0")
  if count ~= replaced then fail("paragraph %d: %d words, %d replaced", p, count, replaced) end
  words_total = words_total + count

  -- A table replacement and a function replacement agree.
  local a = text:gsub("%a+", upper_of)
  local b = text:gsub("%a+", function(w) return w:upper() end)
  if a ~= b then fail("paragraph %d: table and function replacements differ", p) end
  if a:lower() ~= text:lower() then fail("paragraph %d: upper/lower mismatch", p) end

  -- Escaping round trip.
  local e = escape(text)
  if e:find("[<>\"]") then fail("paragraph %d: escape left a special character", p) end
  if unescape(e) ~= text then fail("paragraph %d: escape round trip", p) end

  -- Split on punctuation into fields and join back.
  local fields = {}
  for f in (text .. ","):gmatch("([^,]*),") do fields[#fields + 1] = f end
  if table.concat(fields, ",") ~= text then fail("paragraph %d: split/join", p) end

  -- Reformat every word with its length (captures and format).
  local r = text:gsub("(%a)(%a*)", function(h, t) return h:upper() .. t .. #t end)
  hash = (hash * 131 + #r + #e + #fields) % 1000000007
end

print(string.format("strings_gsub %d checksum %d %d", N, words_total, hash))
