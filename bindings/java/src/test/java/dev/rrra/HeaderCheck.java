package dev.rrra;

import java.io.IOException;
import java.lang.foreign.StructLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Compares the binding's hand-copied constants with include/rrra.h itself: every enum value
 * (status, activation, similarity, base transform, engine, dtype), the override flags, the
 * version and the set of structs. A value added to the header and not to the binding is reported too, so the
 * binding cannot silently fall behind the header. In package dev.rrra to see package-private names.
 */
public final class HeaderCheck {
    private HeaderCheck() {}

    private static final Pattern ENUM_VALUE = Pattern.compile("^\\s*(RRRA_[A-Z0-9_]+)\\s*=\\s*(\\d+),", Pattern.MULTILINE);
    private static final Pattern DEFINE = Pattern.compile("^#define\\s+(RRRA_[A-Z0-9_]+)\\s+(\\S+)", Pattern.MULTILINE);
    private static final Pattern STRUCT = Pattern.compile("^typedef struct (rrra_[a-z_]+) \\{", Pattern.MULTILINE);

    /** The mismatches; empty when the binding agrees with the header. {@code checked[0]}: facts compared. */
    public static List<String> compare(Path header, int[] checked) throws IOException {
        String text = Files.readString(header);
        Map<String, String> inHeader = new LinkedHashMap<>();
        Matcher m = ENUM_VALUE.matcher(text);
        while (m.find()) {
            inHeader.put(m.group(1), m.group(2));
        }
        m = DEFINE.matcher(text);
        while (m.find()) {
            inHeader.put(m.group(1), m.group(2));
        }
        Map<String, String> inJava = new LinkedHashMap<>();
        for (Status s : Status.values()) {
            if (s != Status.UNKNOWN) {
                inJava.put("RRRA_STATUS_" + s.name(), Integer.toString(s.code()));
            }
        }
        for (Activation a : Activation.values()) {
            inJava.put("RRRA_ACTIVATION_" + a.name(), Integer.toString(a.code()));
        }
        for (Similarity a : Similarity.values()) {
            inJava.put("RRRA_SIMILARITY_" + a.name(), Integer.toString(a.code()));
        }
        for (BaseTransform a : BaseTransform.values()) {
            inJava.put("RRRA_BASE_TRANSFORM_" + a.name(), Integer.toString(a.code()));
        }
        for (Engine a : Engine.values()) {
            inJava.put("RRRA_ENGINE_" + a.name(), Integer.toString(a.code()));
        }
        for (Dtype a : Dtype.values()) {
            inJava.put("RRRA_DTYPE_" + a.name(), Integer.toString(a.code()));
        }
        inJava.put("RRRA_OVERRIDE_LAMBDA_RR", Integer.toString(ScoreOptions.LAMBDA_RR));
        inJava.put("RRRA_OVERRIDE_GAMMA_RS", Integer.toString(ScoreOptions.GAMMA_RS));
        inJava.put("RRRA_OVERRIDE_BASE_TRANSFORM", Integer.toString(ScoreOptions.BASE_TRANSFORM));
        inJava.put("RRRA_OVERRIDE_BASE_MU", Integer.toString(ScoreOptions.BASE_MU));
        inJava.put("RRRA_OVERRIDE_BASE_TAU", Integer.toString(ScoreOptions.BASE_TAU));
        // UINT32_MAX read as a Java int.
        inJava.put("RRRA_NOT_DRAWN", Integer.toUnsignedString(Rrra.NOT_DRAWN).equals("4294967295") ? "UINT32_MAX" : "?");

        List<String> problems = new ArrayList<>();
        int n = 0;
        for (Map.Entry<String, String> e : inJava.entrySet()) {
            n++;
            String h = inHeader.get(e.getKey());
            if (h == null) {
                problems.add(e.getKey() + " is in the binding but not in rrra.h");
            } else if (!h.equals(e.getValue())) {
                problems.add(e.getKey() + " = " + h + " in rrra.h, " + e.getValue() + " in the binding");
            }
        }
        for (String name : inHeader.keySet()) {
            boolean constant = name.startsWith("RRRA_STATUS_") || name.startsWith("RRRA_ACTIVATION_")
                    || name.startsWith("RRRA_SIMILARITY_") || name.startsWith("RRRA_BASE_TRANSFORM_")
                    || name.startsWith("RRRA_ENGINE_") || name.startsWith("RRRA_DTYPE_")
                    || name.startsWith("RRRA_OVERRIDE_");
            if (constant && !inJava.containsKey(name)) {
                problems.add(name + " is in rrra.h but not in the binding");
            }
        }
        String version = inHeader.getOrDefault("RRRA_VERSION_STRING", "").replace("\"", "");
        n++;
        String[] hv = version.split("\\."), jv = Native.HEADER_VERSION.split("\\.");
        if (hv.length < 2 || !hv[0].equals(jv[0]) || !hv[1].equals(jv[1])) {
            problems.add("rrra.h is version " + version + ", the binding was written against " + Native.HEADER_VERSION);
        }
        TreeSet<String> structs = new TreeSet<>(), layouts = new TreeSet<>();
        m = STRUCT.matcher(text);
        while (m.find()) {
            structs.add(m.group(1));
        }
        for (StructLayout s : Native.ALL_STRUCTS) {
            layouts.add(s.name().orElseThrow());
        }
        n++;
        if (!structs.equals(layouts)) {
            problems.add("structs in rrra.h " + structs + ", layouts in the binding " + layouts);
        }
        checked[0] = n;
        return problems;
    }

    /** {@code RRRA_VERSION_STRING} of the header. */
    public static String headerVersionString(Path header) throws IOException {
        Matcher m = Pattern.compile("#define RRRA_VERSION_STRING \"([^\"]*)\"").matcher(Files.readString(header));
        return m.find() ? m.group(1) : "";
    }
}
