package dev.rrra;

import java.io.IOException;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Compares the binding's struct layouts with what the C compiler printed for rrra.h
 * (bindings/java/src/test/c/layouts.c): every struct's size and alignment and every member's
 * offset, and that the binding names every member C has and no other.
 * In package dev.rrra to see the package-private layouts.
 */
public final class LayoutCheck {
    private LayoutCheck() {}

    /** The mismatches, empty when the layouts agree; {@code checked[0]} gets the number of facts compared. */
    public static List<String> compare(Path cOutput, int[] checked) throws IOException {
        Map<String, StructLayout> byName = new HashMap<>();
        for (StructLayout s : Native.ALL_STRUCTS) {
            byName.put(s.name().orElseThrow(), s);
        }
        Map<String, List<String>> cMembers = new HashMap<>();
        List<String> problems = new ArrayList<>();
        int n = 0;
        for (String line : Files.readAllLines(cOutput)) {
            String[] f = line.trim().split("\\s+");
            if (f.length == 4 && f[0].equals("struct")) {
                StructLayout s = byName.get(f[1]);
                if (s == null) {
                    problems.add("C struct " + f[1] + " has no Java layout");
                    continue;
                }
                n += 2;
                if (s.byteSize() != Long.parseLong(f[2])) {
                    problems.add(f[1] + ": sizeof " + f[2] + " in C, " + s.byteSize() + " in Java");
                }
                if (s.byteAlignment() != Long.parseLong(f[3])) {
                    problems.add(f[1] + ": alignof " + f[3] + " in C, " + s.byteAlignment() + " in Java");
                }
            } else if (f.length == 3 && f[0].equals("field")) {
                String[] sm = f[1].split("\\.");
                cMembers.computeIfAbsent(sm[0], x -> new ArrayList<>()).add(sm[1]);
                StructLayout s = byName.get(sm[0]);
                if (s == null) {
                    continue;
                }
                n++;
                try {
                    long off = Native.off(s, sm[1]);
                    if (off != Long.parseLong(f[2])) {
                        problems.add(f[1] + ": offset " + f[2] + " in C, " + off + " in Java");
                    }
                } catch (IllegalArgumentException e) {
                    problems.add(f[1] + ": no such member in the Java layout");
                }
            }
        }
        for (StructLayout s : Native.ALL_STRUCTS) {
            String name = s.name().orElseThrow();
            List<String> members = cMembers.get(name);
            if (members == null) {
                problems.add("Java layout " + name + " is not in the C output");
                continue;
            }
            for (MemoryLayout m : s.memberLayouts()) {
                if (m.name().isPresent() && !members.contains(m.name().get())) {
                    problems.add(name + "." + m.name().get() + " exists in Java only");
                }
            }
        }
        checked[0] = n;
        return problems;
    }
}
