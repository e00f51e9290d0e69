//! Compressing an object's bytes in each of Firehose's formats.

use crate::spec::Compression;
use std::io::Write;

/// Most bytes in a HADOOP_SNAPPY block: Hadoop's `SnappyCodec` takes a 256 KiB buffer less
/// its compression overhead (256 KiB / 6 + 32), so that an incompressible block's chunk still
/// fits the 256 KiB its reader copies.
const HADOOP_BLOCK_BYTES: usize = 256 * 1024 - (256 * 1024 / 6 + 32);

/// `data` compressed as `compression` says; `entry` names the ZIP entry.
pub(crate) fn compress(
    compression: Compression,
    data: Vec<u8>,
    entry: &str,
) -> std::io::Result<Vec<u8>> {
    match compression {
        Compression::Uncompressed => Ok(data),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 4),
                flate2::Compression::default(),
            );
            encoder.write_all(&data)?;
            encoder.finish()
        }
        Compression::Zip => {
            let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .large_file(data.len() as u64 >= u64::from(u32::MAX));
            archive
                .start_file(entry, options)
                .map_err(std::io::Error::other)?;
            archive.write_all(&data)?;
            Ok(archive
                .finish()
                .map_err(std::io::Error::other)?
                .into_inner())
        }
        Compression::Snappy => {
            let mut encoder = snap::write::FrameEncoder::new(Vec::with_capacity(data.len() / 2));
            encoder.write_all(&data)?;
            encoder.into_inner().map_err(|e| e.into_error())
        }
        Compression::HadoopSnappy => hadoop_snappy(&data),
    }
}

/// Hadoop's block format (`BlockCompressorStream`): for each block (at most 218,422 bytes),
/// its uncompressed length
/// and then one chunk, its compressed length and raw Snappy bytes; lengths are big-endian
/// u32.
fn hadoop_snappy(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = snap::raw::Encoder::new();
    let mut out = Vec::with_capacity(data.len() / 2);
    for block in data.chunks(HADOOP_BLOCK_BYTES) {
        let chunk = encoder.compress_vec(block).map_err(std::io::Error::other)?;
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Text-like bytes over several Hadoop blocks, with a partial last block.
    fn data() -> Vec<u8> {
        (0..40_000u32)
            .flat_map(|i| format!("{{\"n\":{i},\"k\":\"key-{}\"}}\n", i % 97).into_bytes())
            .collect()
    }

    fn hadoop_blocks(mut body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let take = |body: &mut &[u8]| {
            let (n, rest) = body.split_at(4);
            *body = rest;
            u32::from_be_bytes(n.try_into().unwrap()) as usize
        };
        while !body.is_empty() {
            let raw = take(&mut body);
            assert!(raw <= HADOOP_BLOCK_BYTES);
            let len = take(&mut body);
            let block = snap::raw::Decoder::new()
                .decompress_vec(&body[..len])
                .unwrap();
            assert_eq!(block.len(), raw);
            out.extend(block);
            body = &body[len..];
        }
        out
    }

    #[test]
    fn every_format_reads_back_to_the_same_bytes_with_its_own_reader() {
        let data = data();
        assert!(data.len() > 3 * HADOOP_BLOCK_BYTES);
        for compression in [
            Compression::Uncompressed,
            Compression::Gzip,
            Compression::Zip,
            Compression::Snappy,
            Compression::HadoopSnappy,
        ] {
            let body = compress(compression, data.clone(), "entry-1").unwrap();
            let mut back = Vec::new();
            match compression {
                Compression::Uncompressed => back = body.clone(),
                Compression::Gzip => {
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Compression::Zip => {
                    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&body)).unwrap();
                    assert_eq!(archive.len(), 1);
                    let mut entry = archive.by_index(0).unwrap();
                    assert_eq!(entry.name().unwrap(), "entry-1");
                    entry.read_to_end(&mut back).unwrap();
                }
                Compression::Snappy => {
                    snap::read::FrameDecoder::new(&body[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Compression::HadoopSnappy => back = hadoop_blocks(&body),
            }
            assert_eq!(back, data, "{compression:?}");
            if compression != Compression::Uncompressed {
                assert!(body.len() < data.len() / 2, "{compression:?} compresses");
            }
        }
        // Incompressible data: every chunk still within the 256 KiB Hadoop's reader copies.
        let noise: Vec<u8> = (0..1_000_000u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        let body = compress(Compression::HadoopSnappy, noise.clone(), "n").unwrap();
        assert_eq!(hadoop_blocks(&body), noise);
        let mut rest = &body[..];
        while !rest.is_empty() {
            let chunk = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
            assert!(chunk <= 256 * 1024, "{chunk}");
            rest = &rest[8 + chunk..];
        }
        let empty = compress(Compression::HadoopSnappy, Vec::new(), "e").unwrap();
        assert!(empty.is_empty());
    }
}
