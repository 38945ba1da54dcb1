package dev.rrra.tests;

/**
 * A float64 evaluation of SPEC §3–§4 for one (q, c) pair, written from the spec in Java, so the
 * binding's numbers are checked against something that never went through the C ABI. Supports
 * the settings the tests use: activation tanh or relu, similarity dot or cosine, base transform
 * identity or sigmoid.
 */
final class Reference {
    final double logSRr;
    final double sA;
    final double sFn;
    final double logSRs;
    final double[] probs;

    Reference(Adapter m, String activation, boolean cosine, double adapterMu, double adapterTau, String baseTransform,
            double baseMu, double baseTau, double lambda, double gamma, float[] q, int qOff, float[] c, int cOff,
            Float base) {
        int d = m.d, h = m.h;
        double[] hid = new double[h];
        for (int j = 0; j < h; j++) {
            double s = m.fc1B[j];
            for (int i = 0; i < d; i++) {
                double qi = q[qOff + i], ci = c[cOff + i];
                s += m.fc1W[j * 3 * d + i] * (qi - ci) + m.fc1W[j * 3 * d + d + i] * (qi * ci)
                        + m.fc1W[j * 3 * d + 2 * d + i] * (qi + ci);
            }
            hid[j] = activation.equals("relu") ? Math.max(s, 0) : Math.tanh(s);
        }
        double dot = 0, qq = 0, aa = 0, qc = 0, cc = 0;
        for (int i = 0; i < d; i++) {
            double delta = m.fc2B[i];
            for (int j = 0; j < h; j++) {
                delta += m.fc2W[i * h + j] * hid[j];
            }
            double a = c[cOff + i] + delta;
            dot += q[qOff + i] * a;
            qq += (double) q[qOff + i] * q[qOff + i];
            aa += a * a;
            qc += (double) q[qOff + i] * c[cOff + i];
            cc += (double) c[cOff + i] * c[cOff + i];
        }
        double sim = cosine ? cos(dot, qq, aa) : dot;
        double x = (sim - adapterMu) / adapterTau;
        double logSA = -softplus(-x);
        sA = Math.exp(logSA);
        double[] logits = new double[4];
        double max = Double.NEGATIVE_INFINITY;
        for (int t = 0; t < 4; t++) {
            double s = m.clsB[t];
            for (int j = 0; j < h; j++) {
                s += m.clsW[t * h + j] * hid[j];
            }
            logits[t] = s;
            max = Math.max(max, s);
        }
        double z = 0;
        for (int t = 0; t < 4; t++) {
            z += Math.exp(logits[t] - max);
        }
        probs = new double[4];
        for (int t = 0; t < 4; t++) {
            probs[t] = Math.exp(logits[t] - max) / z;
        }
        sFn = probs[1];
        double b = base != null ? base : (cosine ? cos(qc, qq, cc) : qc);
        double logSB = baseTransform.equals("identity") ? Math.log(b) : -softplus(-(b - baseMu) / baseTau);
        logSRr = logSB + lambda * logSA;
        logSRs = logSB + gamma * Math.log(probs[0] + probs[2] + probs[3]);
    }

    private static double cos(double dot, double nq, double na) {
        double a = Math.sqrt(nq), b = Math.sqrt(na);
        return a < 1e-12 || b < 1e-12 ? 0 : dot / (a * b);
    }

    static double softplus(double x) {
        return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
    }
}
