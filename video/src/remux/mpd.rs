//! DASH manifests (MPD), written with quick-xml's writer (it escapes the segment URLs'
//! `&`): an adaptation set per track, each a representation whose segments are the
//! track's own init and media segments (fragmented MP4 of that track alone), named by a
//! `SegmentTemplate` with `$Number$` (a fragment's index in the stream) and timed by a
//! `SegmentTimeline` in ms from the index. In a static manifest (ON_DEMAND), where
//! fragments do not follow one another (an index skipped: a range on producer time can leave
//! some out; or a discontinuity in time, as HLS's ON_DISCONTINUITY finds them) a new period
//! begins, as DASH marks one; the first is id `0` from 0 (its timeline's times are the
//! session's own), a later one is named by its first fragment's index; 100 periods at most.
//! A dynamic manifest (LIVE, LIVE_REPLAY) is one period, id `0` from 0, so a player finds
//! the same period at every fetch as the window slides: the newest run of consecutive
//! indexes.

use super::Timing;
use super::playlist::{codec_string, discontinuous};
use crate::log::FragmentEntry;
use crate::mkv::Track;
use quick_xml::Writer;
use std::io;

/// What a manifest describes.
#[derive(Debug, Clone)]
pub struct ManifestSpec<'a> {
    /// The fragments, in index order.
    pub fragments: &'a [FragmentEntry],
    /// The tracks (of the session's first fragment).
    pub tracks: &'a [Track],
    /// The session's timeline.
    pub timing: &'a Timing,
    /// `dynamic` (LIVE and LIVE_REPLAY: players fetch it again for new fragments) or
    /// `static` (ON_DEMAND).
    pub dynamic: bool,
    /// When the manifest was made, ms since the epoch (`publishTime`).
    pub now_ms: i64,
    /// The server's time, ms since the epoch, at which media time 0 was available
    /// (`availabilityStartTime` of a dynamic manifest: the session's first fragment's
    /// arrival less its end's media time, so availability follows the server's clock
    /// whatever the producer's says).
    pub availability_ms: i64,
    /// Each segment's fragment number on its `S` (`kvs:fn`), as DisplayFragmentNumber asks.
    pub fragment_numbers: bool,
    /// Each segment's producer or server time on its `S` (`kvs:ts`, ms since the epoch), as
    /// DisplayFragmentTimestamp asks.
    pub fragment_times: Option<crate::log::TimeKind>,
}

/// The namespace of the `kvs:` attributes.
const KVS_NAMESPACE: &str = "https://kinesisvideo.amazon.com/ns/kinesisvideo";

/// A manifest whose init and media segment URIs for a track are `init_uri(track)` and
/// `media_uri(track)` (the latter holding `$Number$`).
pub fn manifest(
    spec: &ManifestSpec<'_>,
    init_uri: impl Fn(u64) -> String,
    media_uri: impl Fn(u64) -> String,
) -> Vec<u8> {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 1);
    write_manifest(&mut writer, spec, &init_uri, &media_uri).expect("writing to memory");
    let mut out = br#"<?xml version="1.0" encoding="UTF-8"?>"#.to_vec();
    out.push(b'\n');
    out.extend(writer.into_inner());
    out
}

/// The most periods a manifest holds.
const PERIODS_MAX: usize = 100;

/// xs:duration of `ms` (none of the durations written is negative: 0 at least).
fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn end_of(fragment: &FragmentEntry, timing: &Timing) -> i64 {
    timing
        .start_of(fragment.meta.producer_ms)
        .saturating_add(i64::try_from(fragment.meta.duration_ms).unwrap_or(0))
}

/// The fragments in runs that follow one another: consecutive indexes, no discontinuity.
fn runs(fragments: &[FragmentEntry]) -> Vec<&[FragmentEntry]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=fragments.len() {
        if i == fragments.len()
            || fragments[i].offset != fragments[i - 1].offset + 1
            || discontinuous(&fragments[i - 1], &fragments[i])
        {
            if i > start {
                runs.push(&fragments[start..i]);
            }
            start = i;
        }
    }
    runs
}

/// The periods and where each sits, and where the last ends. A dynamic manifest has one
/// (id `0`, from 0, its timeline on the session's own times, the newest run of consecutive
/// indexes): a LIVE window slides, and a player must find the same period at every fetch. A static one begins a period where
/// fragments do not follow one another; one whose times went back plays after the one
/// before it (its timeline offset to where that one ends). 100 periods at most.
fn periods<'f>(spec: &ManifestSpec<'f>) -> (Vec<(&'f [FragmentEntry], Placement)>, i64) {
    let runs = if spec.dynamic {
        // `$Number$` counts without gaps: the newest run of consecutive indexes (a LIVE
        // window is one; a LIVE_REPLAY range on producer time may skip some).
        let newest = spec
            .fragments
            .windows(2)
            .rposition(|pair| pair[1].offset != pair[0].offset + 1)
            .map_or(0, |i| i + 1);
        vec![&spec.fragments[newest..]]
    } else {
        runs(spec.fragments)
    };
    let mut periods = Vec::new();
    let mut free_from = 0;
    for (i, run) in runs
        .into_iter()
        .filter(|run| !run.is_empty())
        .take(PERIODS_MAX)
        .enumerate()
    {
        let first = spec.timing.start_of(run[0].meta.producer_ms).max(0);
        let end = end_of(&run[run.len() - 1], spec.timing);
        let place = match i {
            0 => Placement {
                start_ms: 0,
                offset_ms: 0,
            },
            _ => Placement {
                start_ms: first.max(free_from),
                offset_ms: first,
            },
        };
        free_from = place.start_ms + (end - place.offset_ms).max(0);
        periods.push((run, place));
    }
    (periods, free_from)
}

fn write_manifest<W: io::Write>(
    writer: &mut Writer<W>,
    spec: &ManifestSpec<'_>,
    init_uri: &dyn Fn(u64) -> String,
    media_uri: &dyn Fn(u64) -> String,
) -> io::Result<()> {
    let longest = i64::try_from(
        spec.fragments
            .iter()
            .map(|f| f.meta.duration_ms)
            .max()
            .unwrap_or(1000),
    )
    .unwrap_or(i64::MAX);
    let (periods, end_ms) = periods(spec);
    let first_ms = periods
        .first()
        .map_or(0, |(run, _)| spec.timing.start_of(run[0].meta.producer_ms));
    let mut mpd = writer
        .create_element("MPD")
        .with_attribute(("xmlns", "urn:mpeg:dash:schema:mpd:2011"))
        .with_attribute(("xmlns:kvs", KVS_NAMESPACE))
        .with_attribute(("profiles", "urn:mpeg:dash:profile:isoff-live:2011"))
        .with_attribute(("minBufferTime", duration(2_000).as_str()));
    let (availability, publish, update, depth);
    if spec.dynamic {
        availability = time(spec.availability_ms);
        publish = time(spec.now_ms);
        update = duration(longest);
        // Back to the window's first fragment from now, so that every segment listed is
        // still in the time-shift buffer (LIVE_REPLAY's may be old).
        depth = duration(
            spec.now_ms
                .saturating_sub(spec.availability_ms)
                .saturating_sub(first_ms)
                .saturating_add(longest),
        );
        mpd = mpd
            .with_attribute(("type", "dynamic"))
            .with_attribute(("availabilityStartTime", availability.as_str()))
            .with_attribute(("publishTime", publish.as_str()))
            .with_attribute(("minimumUpdatePeriod", update.as_str()))
            .with_attribute(("timeShiftBufferDepth", depth.as_str()));
    } else {
        // Where the last period ends (periods are laid end to end).
        depth = duration(end_ms);
        mpd = mpd
            .with_attribute(("type", "static"))
            .with_attribute(("mediaPresentationDuration", depth.as_str()));
    }
    mpd.write_inner_content(|writer| {
        for (i, (run, place)) in periods.iter().enumerate() {
            write_period(writer, spec, (i, run, place), init_uri, media_uri)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Where a period sits: its start in the presentation, and the media time its timeline
/// counts from (`presentationTimeOffset`).
struct Placement {
    start_ms: i64,
    offset_ms: i64,
}

fn write_period<W: io::Write>(
    writer: &mut Writer<W>,
    spec: &ManifestSpec<'_>,
    (index, run, place): (usize, &[FragmentEntry], &Placement),
    init_uri: &dyn Fn(u64) -> String,
    media_uri: &dyn Fn(u64) -> String,
) -> io::Result<()> {
    let bits: u64 = run.iter().map(|f| f.size * 8).sum();
    let ms: u64 = run.iter().map(|f| f.meta.duration_ms).sum::<u64>().max(1);
    let bandwidth = (bits * 1000 / ms).max(1).to_string();
    let id = match index {
        0 => "0".to_owned(),
        _ => run[0].offset.to_string(),
    };
    let start = duration(place.start_ms);
    writer
        .create_element("Period")
        .with_attribute(("id", id.as_str()))
        .with_attribute(("start", start.as_str()))
        .write_inner_content(|writer| {
            for track in spec.tracks {
                let video = track.pixels.is_some();
                let (number, codecs) = (track.number.to_string(), codec_string(track));
                let mut set = writer
                    .create_element("AdaptationSet")
                    .with_attribute(("id", number.as_str()))
                    .with_attribute(("contentType", if video { "video" } else { "audio" }))
                    .with_attribute(("mimeType", if video { "video/mp4" } else { "audio/mp4" }))
                    .with_attribute(("segmentAlignment", "true"))
                    .with_attribute(("startWithSAP", "1"));
                let (width, height);
                if let Some((w, h)) = track.pixels {
                    (width, height) = (w.to_string(), h.to_string());
                    set = set
                        .with_attribute(("width", width.as_str()))
                        .with_attribute(("height", height.as_str()));
                }
                set.write_inner_content(|writer| {
                    let mut representation = writer
                        .create_element("Representation")
                        .with_attribute(("id", number.as_str()))
                        .with_attribute(("bandwidth", bandwidth.as_str()));
                    if let Some(codecs) = &codecs {
                        representation = representation.with_attribute(("codecs", codecs.as_str()));
                    }
                    representation.write_inner_content(|writer| {
                        let uris = (init_uri(track.number), media_uri(track.number));
                        write_template(writer, spec, run, place.offset_ms, &uris)
                    })?;
                    Ok(())
                })?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_template<W: io::Write>(
    writer: &mut Writer<W>,
    spec: &ManifestSpec<'_>,
    run: &[FragmentEntry],
    offset_ms: i64,
    (init, media): &(String, String),
) -> io::Result<()> {
    let timing = spec.timing;
    let start_number = run[0].offset.to_string();
    let offset = offset_ms.to_string();
    writer
        .create_element("SegmentTemplate")
        .with_attribute(("timescale", "1000"))
        .with_attribute(("presentationTimeOffset", offset.as_str()))
        .with_attribute(("startNumber", start_number.as_str()))
        .with_attribute(("initialization", init.as_str()))
        .with_attribute(("media", media.as_str()))
        .write_inner_content(|writer| {
            writer
                .create_element("SegmentTimeline")
                .write_inner_content(|writer| {
                    for (i, fragment) in run.iter().enumerate() {
                        let start = timing.start_of(fragment.meta.producer_ms);
                        // Until the next one begins (a timeline has no overlaps or gaps
                        // within a period); the last, its own length.
                        let d = run.get(i + 1).map_or(
                            i64::try_from(fragment.meta.duration_ms).unwrap_or(0),
                            |next| timing.start_of(next.meta.producer_ms) - start,
                        );
                        let (t, d) = (start.max(0).to_string(), d.max(1).to_string());
                        let mut s = writer
                            .create_element("S")
                            .with_attribute(("t", t.as_str()))
                            .with_attribute(("d", d.as_str()));
                        let number = fragment.number();
                        if spec.fragment_numbers {
                            s = s.with_attribute(("kvs:fn", number.as_str()));
                        }
                        let ts = spec.fragment_times.map(|kind| match kind {
                            crate::log::TimeKind::Producer => fragment.meta.producer_ms,
                            crate::log::TimeKind::Server => fragment.meta.server_ms,
                        });
                        let ts = ts.map(|ms| ms.to_string());
                        if let Some(ts) = &ts {
                            s = s.with_attribute(("kvs:ts", ts.as_str()));
                        }
                        s.write_empty()?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FragmentMeta;

    fn fragment(offset: u64, producer_ms: i64, duration_ms: u64) -> FragmentEntry {
        FragmentEntry {
            offset,
            size: 1_000,
            meta: FragmentMeta {
                producer_ms,
                server_ms: producer_ms + 5,
                duration_ms,
                frames: 25,
                key_frame_ms: Some(0),
                tracks: 1,
            },
        }
    }

    fn video_track() -> Track {
        Track {
            number: 1,
            codec_id: "V_MPEG4/ISO/AVC".into(),
            codec_private: vec![1, 0x64, 0, 0x1E],
            pixels: Some((320, 240)),
            ..Track::default()
        }
    }

    fn render(fragments: &[FragmentEntry], dynamic: bool) -> String {
        let timing = Timing {
            base_ms: 10_000,
            shifts: Vec::new(),
        };
        let spec = ManifestSpec {
            fragments,
            tracks: &[video_track()],
            timing: &timing,
            dynamic,
            now_ms: 20_000,
            availability_ms: 9_000,
            fragment_numbers: true,
            fragment_times: Some(crate::log::TimeKind::Producer),
        };
        let xml = manifest(
            &spec,
            |t| format!("init.mp4?a=1&TrackNumber={t}"),
            |t| format!("media.mp4?a=1&TrackNumber={t}&FragmentIndex=$Number$"),
        );
        String::from_utf8(xml).unwrap()
    }

    /// The document read back by quick-xml: every element's name, in order (it fails on
    /// XML that is not well formed).
    fn elements(xml: &str) -> Vec<String> {
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut names = Vec::new();
        loop {
            match reader.read_event().expect("well-formed XML") {
                quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                    names.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
                }
                quick_xml::events::Event::Eof => return names,
                _ => {}
            }
        }
    }

    #[test]
    fn a_timeline_runs_without_gaps_or_overlaps_and_uris_are_escaped() {
        // The second fragment begins 80 ms before the first one's length is out (a
        // cluster's audio runs past the next key frame): the timeline takes each to the
        // next one's start.
        let fragments = [
            fragment(7, 10_000, 1_080),
            fragment(8, 11_000, 1_000),
            fragment(9, 12_000, 900),
        ];
        let xml = render(&fragments, false);
        assert_eq!(
            elements(&xml),
            [
                "MPD",
                "Period",
                "AdaptationSet",
                "Representation",
                "SegmentTemplate",
                "SegmentTimeline",
                "S",
                "S",
                "S"
            ]
        );
        assert!(xml.contains(r#"type="static""#), "{xml}");
        assert!(
            xml.contains(r#"mediaPresentationDuration="PT2.900S""#),
            "{xml}"
        );
        assert!(xml.contains(r#"startNumber="7""#), "{xml}");
        assert!(
            xml.contains("media.mp4?a=1&amp;TrackNumber=1&amp;FragmentIndex=$Number$"),
            "{xml}"
        );
        assert!(xml.contains(r#"<S t="0" d="1000" kvs:fn="#), "{xml}");
        assert!(xml.contains(r#"<S t="1000" d="1000" kvs:fn="#), "{xml}");
        assert!(xml.contains(r#"<S t="2000" d="900" kvs:fn="#), "{xml}");
        assert!(xml.contains(r#"kvs:ts="12000""#), "{xml}");
        assert!(xml.contains(r#"codecs="avc1.64001e""#), "{xml}");
    }

    #[test]
    fn discontinuities_start_periods_laid_end_to_end_and_live_is_one_period() {
        // Index 9 after 4 (a range left some out); index 10 twenty seconds after 9 ended
        // (a gap in time); index 11 before 10 began (a clock went back).
        let fragments = [
            fragment(3, 10_000, 1_000),
            fragment(4, 11_000, 1_000),
            fragment(9, 15_000, 1_000),
            fragment(10, 36_000, 1_000),
            fragment(11, 30_000, 1_000),
        ];
        let xml = render(&fragments, false);
        let names = elements(&xml);
        assert_eq!(names.iter().filter(|n| *n == "Period").count(), 4, "{xml}");
        for expected in [
            r#"<Period id="0" start="PT0.000S">"#,
            r#"presentationTimeOffset="0" startNumber="3""#,
            r#"<Period id="9" start="PT5.000S">"#,
            r#"presentationTimeOffset="5000" startNumber="9""#,
            r#"<Period id="10" start="PT26.000S">"#,
            // Back in time: after the period before it ends, its timeline offset to there.
            r#"<Period id="11" start="PT27.000S">"#,
            r#"presentationTimeOffset="20000" startNumber="11""#,
            // The presentation ends where the last period does.
            r#"mediaPresentationDuration="PT28.000S""#,
        ] {
            assert!(xml.contains(expected), "{expected} in {xml}");
        }
        // Dynamic: one period, the newest run of consecutive indexes (9, 10, 11), whatever
        // their times; availability from the server's clock (9 s) and back to the first.
        let xml = render(&fragments, true);
        assert_eq!(
            elements(&xml).iter().filter(|n| *n == "Period").count(),
            1,
            "{xml}"
        );
        for expected in [
            r#"type="dynamic""#,
            r#"<Period id="0" start="PT0.000S">"#,
            r#"presentationTimeOffset="0" startNumber="9""#,
            r#"availabilityStartTime="1970-01-01T00:00:09.000Z""#,
            r#"timeShiftBufferDepth="PT7.000S""#,
            "minimumUpdatePeriod",
        ] {
            assert!(xml.contains(expected), "{expected} in {xml}");
        }
        assert_eq!(xml.matches("<S ").count(), 3, "{xml}");
        assert!(!xml.contains("mediaPresentationDuration"), "{xml}");
        // No fragments at all: a manifest with no period, still well formed.
        assert_eq!(elements(&render(&[], true)), ["MPD"]);
    }
}
