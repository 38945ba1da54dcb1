package dev.rrra.tests;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * A random adapter (SPEC §2) written by hand as a safetensors file: an 8-byte little-endian header
 * length, a JSON header padded with spaces to a multiple of 8, then the F32 tensors back to back.
 * Keeps the weights for the float64 reference in {@link Reference}.
 */
final class Adapter {
    final int d;
    final int h;
    final float[] fc1W; // [h, 3d]
    final float[] fc1B; // [h]
    final float[] fc2W; // [d, h]
    final float[] fc2B; // [d]
    final float[] clsW; // [4, h]
    final float[] clsB; // [4]
    final Map<String, String> metadata = new LinkedHashMap<>();

    Adapter(int d, int h, long seed) {
        this.d = d;
        this.h = h;
        SplittableRandom rng = new SplittableRandom(seed);
        fc1W = random(rng, h * 3 * d, 1.0 / Math.sqrt(3 * d));
        fc1B = random(rng, h, 0.1);
        fc2W = random(rng, d * h, 0.5 / Math.sqrt(h));
        fc2B = random(rng, d, 0.05);
        clsW = random(rng, 4 * h, 1.0 / Math.sqrt(h));
        clsB = random(rng, 4, 0.2);
        metadata.put("format", "rrra-adapter");
        metadata.put("format_version", "1");
    }

    Adapter meta(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    private static float[] random(SplittableRandom rng, int n, double scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) ((rng.nextDouble() * 2 - 1) * scale);
        }
        return v;
    }

    long parameterCount() {
        return (long) h * 3 * d + h + (long) d * h + d + 4L * h + 4;
    }

    byte[] bytes() {
        return bytes(Set.of());
    }

    /** The file, leaving out the tensors named in {@code omit}. */
    byte[] bytes(Set<String> omit) {
        Object[][] tensors = {
            {"fc1.weight", new int[] {h, 3 * d}, fc1W},
            {"fc1.bias", new int[] {h}, fc1B},
            {"fc2.weight", new int[] {d, h}, fc2W},
            {"fc2.bias", new int[] {d}, fc2B},
            {"classifier.weight", new int[] {4, h}, clsW},
            {"classifier.bias", new int[] {4}, clsB},
        };
        StringBuilder json = new StringBuilder("{\"__metadata__\":{");
        boolean first = true;
        for (Map.Entry<String, String> e : metadata.entrySet()) {
            json.append(first ? "" : ",").append('"').append(e.getKey()).append("\":\"").append(e.getValue()).append('"');
            first = false;
        }
        json.append('}');
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        long offset = 0;
        for (Object[] t : tensors) {
            String name = (String) t[0];
            if (omit.contains(name)) {
                continue;
            }
            int[] shape = (int[]) t[1];
            float[] values = (float[]) t[2];
            long end = offset + 4L * values.length;
            json.append(",\"").append(name).append("\":{\"dtype\":\"F32\",\"shape\":[");
            for (int i = 0; i < shape.length; i++) {
                json.append(i == 0 ? "" : ",").append(shape[i]);
            }
            json.append("],\"data_offsets\":[").append(offset).append(',').append(end).append("]}");
            ByteBuffer buf = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
            for (float v : values) {
                buf.putFloat(v);
            }
            data.writeBytes(buf.array());
            offset = end;
        }
        json.append('}');
        while (json.length() % 8 != 0) {
            json.append(' ');
        }
        byte[] header = json.toString().getBytes(StandardCharsets.UTF_8);
        ByteBuffer out = ByteBuffer.allocate(8 + header.length + data.size()).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(header.length).put(header).put(data.toByteArray());
        return out.array();
    }
}
