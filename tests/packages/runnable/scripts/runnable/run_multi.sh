#!/bin/bash
# Writes the card's multiple_results CSV into the model dir (the working directory).
printf 'model,performance,metric\nsmall,10.5,tokens_per_second\nlarge,3.25,tokens_per_second\n' > "$MAD_OUTPUT_CSV"
echo "wrote $MAD_OUTPUT_CSV"
