"""The thread spine of a run: channels, frame order, FPS, the capture -> inference -> main stages,
rendering into sinks, several sources at once, and a clean stop on signals.

Import the submodule you need (``detector.pipeline.stages``, ``detector.pipeline.fps``, ...); this
package imports nothing, so its low modules stay usable from the layers below the stages.
"""
