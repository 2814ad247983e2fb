"""HLS output for TAMS flows (issue 15): playlists built from a flow's segments, beside the API."""
