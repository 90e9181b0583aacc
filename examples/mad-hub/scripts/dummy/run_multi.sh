#!/bin/bash
# Several results: a CSV named by the card's multiple_results (exported as MAD_OUTPUT_CSV).
{
    echo "model,performance,metric"
    echo "bs1,101.5,tokens_per_second"
    echo "bs8,655.0,tokens_per_second"
} > "${MAD_OUTPUT_CSV:-perf_dummy.csv}"
echo "wrote ${MAD_OUTPUT_CSV:-perf_dummy.csv}"
