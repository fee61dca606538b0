"""TFLite SSD files as a library: read the flatbuffer, rebuild the network and the SSD
post-processing in TensorFlow, convert to a frozen graph, and check parity with LiteRT.

Used by ``python main.py fetch`` (the default model) and ``python main.py model convert``.
"""
