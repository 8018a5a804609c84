local rt = require "hakrt"
rt.channel():recv()
