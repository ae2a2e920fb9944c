# The app image used by compose.yaml (Rasa runs from its own official images).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contact_center contact_center
COPY routing routing
COPY chatbot chatbot
COPY recordings recordings
COPY web web
RUN pip install --no-cache-dir -e .
ENV CC_HOST=0.0.0.0 CC_PORT=8080 CC_MODE=production
EXPOSE 8080
CMD ["sh", "-c", "contact-center db upgrade && contact-center serve"]
