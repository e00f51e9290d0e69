//! HLS playlists (m3u8-rs writes them).
