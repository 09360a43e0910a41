"""One module per interchange format (otio, kdenlive, fcp7, fcpxml, edl); montage_otio.registry lists them."""
