"""Market-data layer: sources (Polygon REST, flat files, simulated market) behind one async interface."""
