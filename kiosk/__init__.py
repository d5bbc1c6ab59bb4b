"""kiosk: the touch kiosk of one station (Kivy)."""

__version__ = "0.1.0"
