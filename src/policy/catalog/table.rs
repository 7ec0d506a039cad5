//! The built-in price table: list prices, windows, source and date.

const OPENAI: &str = "openai.com/api/pricing";
const OPENAI_DOCS: &str = "platform.openai.com/docs/models";
const ANTHROPIC: &str = "docs.anthropic.com/en/docs/about-claude/pricing";

/// One built-in entry. Rates in µ$ per 1M tokens (0: the part is billed
/// as plain input or output).
pub(super) struct Row {
    pub(super) name: &'static str,
    pub(super) provider: &'static str,
    pub(super) input: u64,
    pub(super) output: u64,
    pub(super) cached: u64,
    pub(super) cache_write: u64,
    pub(super) audio_in: u64,
    pub(super) audio_out: u64,
    pub(super) context: u32,
    pub(super) max_output: u32,
    pub(super) source: &'static str,
    pub(super) as_of: &'static str,
}

/// An OpenAI text model: (name, input, output, cached input, context,
/// max output (0: the context), as of).
const fn oa(
    n: &'static str,
    i: u64,
    o: u64,
    c: u64,
    ctx: u32,
    out: u32,
    as_of: &'static str,
) -> Row {
    Row {
        name: n,
        provider: "openai",
        input: i,
        output: o,
        cached: c,
        cache_write: 0,
        audio_in: 0,
        audio_out: 0,
        context: ctx,
        max_output: out,
        source: OPENAI,
        as_of,
    }
}

/// An Anthropic model: (name, input, output, cache write (5 minutes),
/// cache read, max output, as of); every one has a 200K context.
const fn an(n: &'static str, i: u64, o: u64, w: u64, r: u64, out: u32, as_of: &'static str) -> Row {
    Row {
        name: n,
        provider: "anthropic",
        input: i,
        output: o,
        cached: r,
        cache_write: w,
        audio_in: 0,
        audio_out: 0,
        context: 200_000,
        max_output: out,
        source: ANTHROPIC,
        as_of,
    }
}

const fn audio(mut r: Row, audio_in: u64, audio_out: u64) -> Row {
    r.audio_in = audio_in;
    r.audio_out = audio_out;
    r.source = OPENAI_DOCS;
    r
}

const G5: &str = "2025-08-07";
const G41: &str = "2025-04-14";
const O3: &str = "2025-06-10";
const LEGACY: &str = "2024-08-06";
const C45: &str = "2025-10-15";
const DEC_2024: &str = "2024-12-17";
const O3MINI: &str = "2025-01-31";

#[rustfmt::skip]
pub(super) const BUILT_IN: &[Row] = &[
    oa("gpt-5", 1_250_000, 10_000_000, 125_000, 400_000, 128_000, G5),
    oa("gpt-5-mini", 250_000, 2_000_000, 25_000, 400_000, 128_000, G5),
    oa("gpt-5-nano", 50_000, 400_000, 5_000, 400_000, 128_000, G5),
    oa("gpt-5-chat-latest", 1_250_000, 10_000_000, 125_000, 128_000, 16_384, G5),
    oa("gpt-4.1", 2_000_000, 8_000_000, 500_000, 1_047_576, 32_768, G41),
    oa("gpt-4.1-mini", 400_000, 1_600_000, 100_000, 1_047_576, 32_768, G41),
    oa("gpt-4.1-nano", 100_000, 400_000, 25_000, 1_047_576, 32_768, G41),
    oa("gpt-4o", 2_500_000, 10_000_000, 1_250_000, 128_000, 16_384, LEGACY),
    oa("gpt-4o-mini", 150_000, 600_000, 75_000, 128_000, 16_384, LEGACY),
    audio(oa("gpt-4o-audio-preview", 2_500_000, 10_000_000, 0, 128_000, 16_384, DEC_2024), 40_000_000, 80_000_000),
    audio(oa("gpt-4o-mini-audio-preview", 150_000, 600_000, 0, 128_000, 16_384, DEC_2024), 10_000_000, 20_000_000),
    oa("o1", 15_000_000, 60_000_000, 7_500_000, 200_000, 100_000, DEC_2024),
    oa("o1-mini", 1_100_000, 4_400_000, 550_000, 128_000, 65_536, O3MINI),
    oa("o1-pro", 150_000_000, 600_000_000, 0, 200_000, 100_000, "2025-03-19"),
    oa("o3", 2_000_000, 8_000_000, 500_000, 200_000, 100_000, O3),
    oa("o3-pro", 20_000_000, 80_000_000, 0, 200_000, 100_000, O3),
    oa("o3-mini", 1_100_000, 4_400_000, 550_000, 200_000, 100_000, O3MINI),
    oa("o4-mini", 1_100_000, 4_400_000, 275_000, 200_000, 100_000, "2025-04-16"),
    oa("gpt-4-turbo", 10_000_000, 30_000_000, 0, 128_000, 4_096, "2024-04-09"),
    oa("gpt-4", 30_000_000, 60_000_000, 0, 8_192, 0, LEGACY),
    oa("gpt-4-32k", 60_000_000, 120_000_000, 0, 32_768, 0, LEGACY),
    oa("gpt-3.5-turbo", 500_000, 1_500_000, 0, 16_385, 0, LEGACY),
    oa("gpt-3.5-turbo-16k", 3_000_000, 4_000_000, 0, 16_385, 0, LEGACY),
    oa("text-embedding-3-small", 20_000, 0, 0, 8_191, 0, LEGACY),
    oa("text-embedding-3-large", 130_000, 0, 0, 8_191, 0, LEGACY),
    oa("text-embedding-ada-002", 100_000, 0, 0, 8_191, 0, LEGACY),
    an("claude-opus-4-5", 5_000_000, 25_000_000, 6_250_000, 500_000, 64_000, "2025-11-24"),
    an("claude-opus-4-1", 15_000_000, 75_000_000, 18_750_000, 1_500_000, 32_000, "2025-08-05"),
    an("claude-opus-4", 15_000_000, 75_000_000, 18_750_000, 1_500_000, 32_000, C45),
    an("claude-sonnet-4-5", 3_000_000, 15_000_000, 3_750_000, 300_000, 64_000, "2025-09-29"),
    an("claude-sonnet-4", 3_000_000, 15_000_000, 3_750_000, 300_000, 64_000, C45),
    an("claude-3-7-sonnet", 3_000_000, 15_000_000, 3_750_000, 300_000, 64_000, C45),
    an("claude-haiku-4-5", 1_000_000, 5_000_000, 1_250_000, 100_000, 64_000, C45),
    an("claude-3-5-haiku", 800_000, 4_000_000, 1_000_000, 80_000, 8_192, C45),
    an("claude-3-haiku", 250_000, 1_250_000, 300_000, 30_000, 4_096, C45),
];
