/* Prints sizeof, alignof and every member's offsetof for the structs of rrra.h, as the C
 * compiler lays them out, for the Java binding's layout check (dev.rrra.LayoutCheck). */
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include "rrra.h"

#define S(T) printf("struct %s %zu %zu\n", #T, sizeof(T), alignof(T))
#define F(T, m) printf("field %s.%s %zu\n", #T, #m, offsetof(T, m))

int main(void) {
    S(rrra_model_info);
    F(rrra_model_info, struct_size); F(rrra_model_info, dim); F(rrra_model_info, hidden);
    F(rrra_model_info, parameter_count); F(rrra_model_info, activation); F(rrra_model_info, similarity);
    F(rrra_model_info, base_transform); F(rrra_model_info, adapter_mu); F(rrra_model_info, adapter_tau);
    F(rrra_model_info, base_mu); F(rrra_model_info, base_tau); F(rrra_model_info, lambda_rr);
    F(rrra_model_info, gamma_rs); F(rrra_model_info, encoder);

    S(rrra_session_options);
    F(rrra_session_options, struct_size); F(rrra_session_options, engine); F(rrra_session_options, threads); F(rrra_session_options, cpu_kernel); F(rrra_session_options, precision);

    S(rrra_batch);
    F(rrra_batch, struct_size); F(rrra_batch, dim); F(rrra_batch, n_queries); F(rrra_batch, queries);
    F(rrra_batch, queries_len); F(rrra_batch, candidate_counts); F(rrra_batch, candidates);
    F(rrra_batch, candidates_len); F(rrra_batch, candidate_stride); F(rrra_batch, corpus);
    F(rrra_batch, candidate_ids); F(rrra_batch, candidate_ids_len); F(rrra_batch, base_scores);
    F(rrra_batch, base_scores_len); F(rrra_batch, queries_dtype); F(rrra_batch, candidates_dtype);

    S(rrra_score_options);
    F(rrra_score_options, struct_size); F(rrra_score_options, override_flags); F(rrra_score_options, base_transform);
    F(rrra_score_options, lambda_rr); F(rrra_score_options, gamma_rs); F(rrra_score_options, base_mu);
    F(rrra_score_options, base_tau);

    S(rrra_rerank_outputs);
    F(rrra_rerank_outputs, struct_size); F(rrra_rerank_outputs, log_s_rr); F(rrra_rerank_outputs, log_s_rr_len);
    F(rrra_rerank_outputs, s_a); F(rrra_rerank_outputs, s_a_len); F(rrra_rerank_outputs, s_fn);
    F(rrra_rerank_outputs, s_fn_len); F(rrra_rerank_outputs, class_probs); F(rrra_rerank_outputs, class_probs_len);
    F(rrra_rerank_outputs, order); F(rrra_rerank_outputs, order_len);

    S(rrra_resample_request);
    F(rrra_resample_request, struct_size); F(rrra_resample_request, samples_per_query); F(rrra_resample_request, seed);
    F(rrra_resample_request, first_query_index); F(rrra_resample_request, positive_mask);
    F(rrra_resample_request, positive_mask_len);

    S(rrra_resample_outputs);
    F(rrra_resample_outputs, struct_size); F(rrra_resample_outputs, log_s_rs); F(rrra_resample_outputs, log_s_rs_len);
    F(rrra_resample_outputs, s_fn); F(rrra_resample_outputs, s_fn_len); F(rrra_resample_outputs, samples);
    F(rrra_resample_outputs, samples_len); F(rrra_resample_outputs, sample_counts);
    F(rrra_resample_outputs, sample_counts_len);
    return 0;
}
