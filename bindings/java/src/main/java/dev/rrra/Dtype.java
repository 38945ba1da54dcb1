package dev.rrra;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.ValueLayout;

/**
 * {@code rrra_dtype}: how embedding values are stored. The library widens F16 and BF16 to f32
 * exactly, so they score as the same values passed as floats would; a session's arithmetic is a
 * separate choice ({@link Precision}). 16-bit values travel as their bits in a {@code short[]}
 * or a segment of shorts.
 */
public enum Dtype {
    /** 32-bit IEEE floats. */
    F32,
    /** IEEE half floats ({@link Float#floatToFloat16}, {@link Float#float16ToFloat}). */
    F16,
    /** bfloat16: the top 16 bits of a float. */
    BF16;

    /** The constant for a C value, or null for one this binding does not know. */
    public static Dtype of(int code) {
        return code >= 0 && code < values().length ? values()[code] : null;
    }

    public int code() {
        return ordinal();
    }

    /** One value's layout: its size and the alignment the library requires. */
    ValueLayout layout() {
        return this == F32 ? JAVA_FLOAT : JAVA_SHORT;
    }

    /** Rejects F32 for data held in a {@code short[]}. */
    Dtype requireSixteenBits() {
        if (this == F32) {
            throw new IllegalArgumentException("a short[] holds 16-bit values: use F16 or BF16 (F32 takes a float[])");
        }
        return this;
    }
}
