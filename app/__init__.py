"""dprog's studio: the GUI-free model (`state`, `commands`, `layout`, `recovery`, `training`,
`training_data`) and the views.

`app.state`, `app.commands`, `app.layout`, `app.recovery`, `app.training` and
`app.training_data` import neither dearpygui nor
torch (a test proves it), so the whole editing model is testable headless and the studio
can draw its first frame before torch has loaded. Only `app.studio` and `app.views` touch
Dear PyGui; they read `AppState` and send it commands.
"""
